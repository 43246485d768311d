"""Ivoz: a provider-oriented, multilevel IP telephony platform."""

__version__ = "0.1.0"
