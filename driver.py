"""The script `spark-submit` runs: `driver.py JOB [options]` runs the module `jobs/JOB.py`.

Submitting `jobs/JOB.py` itself would put `jobs/` first on `sys.path`, where the job modules
`features.py`, `models.py`... would shadow the packages of the same names; from the project
root (or the zipped packages on a cluster) every package resolves as it should.
"""

import runpy
import sys

if __name__ == "__main__":
    job = sys.argv.pop(1)
    runpy.run_module(f"jobs.{job}", run_name="__main__", alter_sys=True)
