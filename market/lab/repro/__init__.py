"""Reproduction experiments of the papers: each module writes CSV tables and PNG figures."""
