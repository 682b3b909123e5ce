"""Reference values of Student's t for src/util/student_t.rs (pip install scipy).

    python3 tests/reference/student_t.py
"""
from scipy import stats

for df in [1, 2, 2.5, 4, 7.3, 10, 30, 1000]:
    print(df, repr(float(stats.t.ppf(0.975, df))), repr(float(stats.t.ppf(0.995, df))),
          repr(float(stats.t.cdf(1.5, df))))
