"""Process plumbing shared by every service: edge guards, outbound calls, ports."""
