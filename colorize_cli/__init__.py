"""colorize: put colour back into black-and-white photographs with a convolutional network."""

__version__ = "0.1.0"
