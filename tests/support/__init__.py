"""Test support: throwaway services and helpers shared by every test layer."""
