from stance.cli import main

main()
