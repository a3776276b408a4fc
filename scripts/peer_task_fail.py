"""Peer-check task: prints a line, then exits with status 3 (the agent must mark it failed)."""
import sys

print("peer task: about to fail")
sys.exit(3)
