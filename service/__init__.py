"""aeserve: serve, train and explain autoencoders for anomaly detection.

This package is the torch-free half: the HTTP service, the model repository and the command line.
"""

__version__ = "0.1.0"
