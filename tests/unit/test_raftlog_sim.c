/* replication/raftlog on the simulated back-end of io/: the same tests as test_raftlog.c. */
#define TU_SIM 1
#include "test_raftlog.c"
