"""Messaging: the only package that imports pika. Topology, task messages, publisher, consumer."""
