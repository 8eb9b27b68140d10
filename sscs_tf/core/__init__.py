"""Plumbing every other folder relies on: atomic writes and safe reads of the files a user hands
over (`fileio`), and the named points where the fault-injection tests kill a process (`faults`).

May import (from sscs_tf): nothing.
"""
