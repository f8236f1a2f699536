#!/usr/bin/env bash
# The fleet alerting rules in docs/prometheus/ are valid, their unit tests
# pass, the example scrape config loads them, and the example Alertmanager
# configuration is valid.
set -euo pipefail
cd "$(dirname "$0")/../../docs/prometheus"
promtool check rules porteiro.rules.yml
promtool test rules porteiro.rules.test.yml
promtool check config prometheus.example.yml
amtool check-config alertmanager.example.yml
