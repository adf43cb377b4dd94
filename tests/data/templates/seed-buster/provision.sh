#!/bin/sh
# Test data: stands in for the seed's provision.sh; never run.
echo "BEGIN{noop}"
echo "END{noop}"
