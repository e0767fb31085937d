"""Command-line pieces shared by the example scripts."""
import argparse
import sys


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line with exit code 2, instead of a usage block."""

    def error(self, message):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)
