"""Reference Welch interval for src/report/regression/verdict.rs (pip install scipy).

    python3 tests/reference/welch.py
"""
from scipy import stats

b = [71.0, 74.5, 69.0]
c = [65.0, 66.5, 61.25, 63.0]
r = stats.ttest_ind(c, b, equal_var=False)
ci = r.confidence_interval(0.95)
print(repr(sum(c) / len(c) - sum(b) / len(b)), repr(float(r.df)), repr(float(ci.low)), repr(float(ci.high)))
