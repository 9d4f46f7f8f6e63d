"""`python -m ouroboros.run OPTIONS` is `ouroboros run OPTIONS`.

For schedulers that start a Python module with options only, such as Airflow's
BeamRunPythonPipelineOperator (`py_file="ouroboros.run", py_options=["-m"]`, see deploy/airflow/).
"""

import sys

from ouroboros.pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
