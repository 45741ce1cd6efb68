"""The Ray Serve application (built in a later issue)."""
