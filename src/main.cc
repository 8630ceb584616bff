#include "server/cli.h"

int main(int argc, char** argv) { return ferry::RunCli(argc, argv); }
