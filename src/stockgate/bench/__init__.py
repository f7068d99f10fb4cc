"""Load benchmarks (`stockgate bench`): scenarios driven by wrk, checked for consistency after."""
