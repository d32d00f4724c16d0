"""grove-initc: the init container that holds a pod until its parent cliques have their minimum Ready."""
