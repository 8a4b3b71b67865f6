"""Fuzzers run by `./dev fuzz` (long profiles) and, in short profiles, by the test suite."""
