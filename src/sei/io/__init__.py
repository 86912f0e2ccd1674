"""Everything that crosses the process boundary: image files in their own dtypes, intensity maps, downloads."""
