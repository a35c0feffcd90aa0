/* test_sim_glue: the simulator with the replication glue in the loop (test_sim --glue 1). */
#define SIM_GLUE_DEFAULT 1
#include "test_sim.c"
