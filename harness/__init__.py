"""Running the service as production does, for the tests and the benchmark alike."""
