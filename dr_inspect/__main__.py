from dr_inspect.cli import main

main()
