"""Great Expectations suites and the gate that runs them before anything is written."""
