"""Shared test infrastructure: fakes for Slack, Kubernetes and helm, and real local servers.

See docs/testing.md for what is real, what is faked, and why.
"""
