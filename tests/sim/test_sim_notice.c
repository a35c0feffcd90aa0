/* test_sim_notice: the simulator with the transport's lost-connection notices (test_sim
 * --notice 1): followers of a crashed or cut-off node campaign early, and connections flap. */
#define SIM_NOTICE_DEFAULT 1
#include "test_sim.c"
