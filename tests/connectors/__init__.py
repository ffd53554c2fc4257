"""The connector framework and each connector against vendor stubs."""
