"""The ground floor of files: atomic writes, digests, reads that follow no link, paths that stay inside a folder."""
