"""Real servers on loopback for tests, benchmarks and the demo (never used against the internet).

- `dnsserver.DNSServer`: an authoritative-for-everything DNS server (UDP and TCP) whose zone the
  calling thread changes at run time; also serves Team Cymru's origin/AS-name TXT format.
"""
