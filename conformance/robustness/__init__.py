"""Robustness: hostile inputs (:mod:`conformance.robustness.inputs`), the per-input loop with sanity probes
(:mod:`conformance.robustness.probe`) and the fuzzing campaign (:mod:`conformance.robustness.fuzz`)."""
