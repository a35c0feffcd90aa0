/* replication/hstore on the simulated back-end of io/: the same tests as test_hstore.c. */
#define TU_SIM 1
#include "test_hstore.c"
