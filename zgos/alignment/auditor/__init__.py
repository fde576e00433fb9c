"""The auditor node (``zg auditor``): probes, challenges and the reports they lead to (issue 17)."""
