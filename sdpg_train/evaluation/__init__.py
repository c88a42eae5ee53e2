"""Evaluation and reporting: ``sdpg eval`` (pass@k, accuracy, status histograms), results files, run comparison
and training-curve plots."""
