#!/usr/bin/env python3
"""Run every integration test (test_*.py here) and print one closing line,
"integration: N passed, N failed". Exit status 0 only when all passed.

  run.py                 all tests
  run.py -k starttls     tests whose id contains "starttls"
"""
import argparse
import os
import sys
import unittest


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="only tests whose id contains this")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    loader = unittest.TestLoader()
    discovered = loader.discover(here, pattern="test_*.py", top_level_dir=here)
    chosen = unittest.TestSuite(t for t in iter_tests(discovered) if args.k in t.id())
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(chosen)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print("integration: %d passed, %d failed%s" % (
        passed, failed, (", %d skipped" % skipped) if skipped else ""))
    return 0 if failed == 0 and skipped == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
