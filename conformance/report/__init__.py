"""Reports built from run folders: the self-contained HTML conformance report."""
