# Example apps: each examples/<app>/<app>.mk adds its programs to PROGRAMS
# (and, if it has one, its test script to EXAMPLE_TESTS).
EXAMPLE_TESTS :=
-include $(wildcard examples/*/*.mk)
