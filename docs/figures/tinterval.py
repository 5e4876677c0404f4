"""The 95% Student-t interval of a mean, as gatelab's reports give it (mean ± t(0.975, n - 1)·s/√n),
for the scripts of docs/figures."""
import math
import statistics

# t(0.975, n - 1) for n = 2..30; beyond 30 the value at 30 (a slightly wider interval).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045]


def interval(xs, digits=3):
    """`mean [low, high]` with signs, or the mean alone for one value."""
    m = statistics.mean(xs)
    if len(xs) < 2:
        return f"{m:+.{digits}f}"
    h = T975[min(len(xs), 30) - 2] * statistics.stdev(xs) / math.sqrt(len(xs))
    return f"{m:+.{digits}f} [{m - h:+.{digits}f}, {m + h:+.{digits}f}]"
