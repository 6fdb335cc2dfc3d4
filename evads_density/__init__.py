"""Multi-modal information density of short videos (Vden, Aden, Oden), as in the E-VAds paper.

Vden: how fast the picture changes; Aden: spoken units per second; Oden: on-screen text
units per second. Measured from the raw videos (decode, visual features, ASR, OCR) or from
the time-aligned OCR/ASR events of E-VAds annotations.
"""
