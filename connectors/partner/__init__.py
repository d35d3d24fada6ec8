"""The partner side: the vendor reader (a local copy of a partner topic) and the
auditor's disclosure report."""
