//! The HTTP engine as a `Mode` of the server core.

use std::net::SocketAddr;

use mio::event::Event;
use mio::net::TcpStream;

use super::engine::{CLIENT_KEY, Ctx, HttpEngine};
use crate::mode::Mode;
use crate::per_ip::ClientSlot;

impl Mode for HttpEngine {
    fn accept(&mut self, sock: TcpStream, addr: SocketAddr, slot: ClientSlot, ctx: &mut Ctx) {
        HttpEngine::accept(self, sock, addr, slot, ctx);
    }

    fn event(&mut self, key: usize, ev: &Event, ctx: &mut Ctx) {
        if key % 2 == CLIENT_KEY {
            self.client_event(key / 2, ev, ctx);
        } else {
            self.conn_event(key / 2, ev, ctx);
        }
    }

    fn run_ready_again(&mut self, ctx: &mut Ctx) {
        HttpEngine::run_ready_again(self, ctx);
    }

    fn has_ready_work(&self) -> bool {
        HttpEngine::has_ready_work(self)
    }

    fn on_deadline(&mut self, key: usize, generation: u64, ctx: &mut Ctx) {
        HttpEngine::on_deadline(self, key, generation, ctx);
    }

    fn waits_for(&self, key: usize, generation: u64) -> bool {
        HttpEngine::waits_for(self, key, generation)
    }

    fn sweep(&mut self, ctx: &mut Ctx) {
        HttpEngine::sweep(self, ctx);
    }

    fn open_clients(&self) -> usize {
        HttpEngine::open_clients(self)
    }

    fn start_drain(&mut self) {
        HttpEngine::start_drain(self);
    }

    fn close_all(&mut self, _ctx: &mut Ctx) {
        HttpEngine::close_all(self);
    }

    fn reopen_logs(&mut self) -> Option<std::io::Result<std::path::PathBuf>> {
        HttpEngine::reopen_log(self)
    }

    fn backends_changed(&mut self, n: usize) {
        self.ensure_backends(n);
    }

    fn forget_backend(&mut self, idx: usize) {
        HttpEngine::forget_backend(self, idx);
    }

    fn take_out_of_descriptors(&mut self) -> Option<String> {
        HttpEngine::take_out_of_descriptors(self).then(|| "a backend connect ran out of descriptors".to_string())
    }

    fn flush_log(&mut self) {
        HttpEngine::flush_log(self);
    }

    fn reconfigure(&mut self, config: &crate::config::Config) {
        if let Some(settings) = config.http_settings() {
            self.budget.config = settings.retry_budget;
            self.settings = settings;
        }
    }
}
