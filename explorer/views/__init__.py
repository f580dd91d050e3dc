"""One module per view, each exposing render()."""
