-- Fragment (a WITH-list expression over the rows' sparse histograms `slots` / `counts`): `h_running`, the running totals of a group's histograms laid out dense (dense_histogram) and added position by position; latency_stats reads the percentile positions off it, so the histogram itself never leaves the engine.
arrayCumSum(sumForEach({{rollups/dense_histogram}})) AS h_running
