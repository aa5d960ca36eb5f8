"""HTTP routes, one module per resource. Each validates, delegates once, and returns a schema."""
