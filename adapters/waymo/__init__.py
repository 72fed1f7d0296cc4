"""Waymo Open Dataset end-to-end driving (WOD-E2E): E2EDFrame TFRecords -> samples and rater labels.

``tfrecord`` reads and writes the TFRecord container without TensorFlow; ``schema`` builds lead-bench's
own wire-compatible protobuf classes (``E2EDFrame``, ``E2EDChallengeSubmission`` and what they contain)
at import time, documented by the ``.proto`` files in ``proto/``. See specs/waymo_e2e.md.
"""
