"""A sample task: prints a few lines and reports a scalar when the clearml SDK is installed."""
import sys
import time

print("hello from a ClearML task run by the Rust agent")
print("python", sys.version.split()[0])
for i in range(5):
    print(f"step {i}")
    time.sleep(0.1)
print("done")
