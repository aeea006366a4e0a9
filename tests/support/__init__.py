"""Fakes and fixtures shared by the tests (real parts are preferred where they run here)."""
