from agentcg.cli import main

main()
