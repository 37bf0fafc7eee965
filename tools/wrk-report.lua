-- wrk script: print latency percentiles wrk does not show (p99.9), in microseconds.
-- Used by tools/bench-policies.sh: wrk -s tools/wrk-report.lua ...
done = function(summary, latency, requests)
  io.write(string.format("LATENCY mean=%.0f p50=%d p90=%d p99=%d p999=%d max=%d requests=%d errors=%d\n",
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status))
end
