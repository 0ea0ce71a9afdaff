// The app's C entry point hands control to the Rust player (libsplatcast_ios.a).
extern void splatcast_main(void);

int main(int argc, char *argv[]) {
    (void)argc;
    (void)argv;
    splatcast_main();
    return 0;
}
