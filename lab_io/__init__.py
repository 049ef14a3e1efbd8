"""Lab instrument files in, Ct calls out (parsers and the kit rules)."""
