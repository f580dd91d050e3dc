"""Panels shared by several views (explorer/views); a panel never imports a view."""
