"""The task both agents run for the comparison stage of scripts/peer-check.sh."""
import os
import sys

import six

print("peer-compare: six", six.__version__)
print("peer-compare: task id set", bool(os.environ.get("CLEARML_TASK_ID")))
print("peer-compare: to stderr", file=sys.stderr)
for i in range(3):
    print(f"peer-compare: line {i}")
