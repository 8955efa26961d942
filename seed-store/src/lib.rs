//! File-based seed directory on shared storage through which coordinators and workers find
//! each other. Not built yet: coordinators forming a cluster from seeds is a later milestone.
