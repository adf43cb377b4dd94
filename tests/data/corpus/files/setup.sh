#!/bin/sh
# used by the corpus templates as a provisioner script
echo corpus
